"""Authoring tools of the course: they write the repository's files, students never need them.

Run them from the repository root (``make`` does):

- ``python -m scripts.release``          chapters/ (student notebooks) from solutions/ (``make chapters``)
- ``python -m scripts.nbgrader_course``  an nbgrader course from solutions/ (``make nbgrader``)
- ``python -m scripts.book_config``      the Jupyter Book config for one execution mode (``scripts/build_book.sh``)

They need the ``dev`` extra (jupytext, nbformat, PyYAML) and are not installed with
``course_lib``: the runtime package imports none of them. The book's Colab and download
links are computed by ``book/_ext/colab_links.py``, beside the Sphinx extension using them.
"""
