"""course_lib.inputs: value checks run where they are cheap, never per step on an accelerator.

A tensor on the ``meta`` device has a shape and a dtype but no values: any value read
(``.item()``, a comparison used in an ``if``) raises. Running the training-step code on
meta tensors therefore proves, on any machine, that it reads no values (no host sync on
a GPU) once the model's first batch has been checked.
"""
import pytest
import torch

from course_lib import inputs
from course_lib.inpainting import InpaintingNet
from course_lib.masks import apply_mask
from course_lib.vae import VAE, elbo_loss


def test_step_paths_read_no_values_off_the_cpu():
    vae = VAE(latent_dim=4, image_size=16).to("meta")
    vae.encoder._range_checked = True                        # the first batch was checked
    x = torch.empty(2, 3, 16, 16, device="meta")
    mask = torch.empty(2, 1, 16, 16, device="meta")
    x_logits, mu, logvar = vae(x)
    loss = elbo_loss(x_logits, x, mu, logvar).loss
    assert loss.device.type == "meta" and loss.shape == ()
    filled = apply_mask(x, mask, 0.5)
    out = InpaintingNet().to("meta")(filled, mask)
    assert out.shape == (2, 3, 16, 16)
    with pytest.raises(TypeError, match="float images"):    # dtype checks still run there
        vae(torch.empty(2, 3, 16, 16, device="meta", dtype=torch.uint8))


def test_the_first_batch_is_checked_on_any_device_then_only_on_the_cpu():
    x = torch.empty(2, 3, 16, 16, device="meta")
    assert inputs.range_check_due(x, entry=True) and not inputs.range_check_due(x)
    assert inputs.range_check_due(torch.zeros(1))
    vae = VAE(latent_dim=4, image_size=16)
    vae(torch.rand(2, 3, 16, 16))
    assert vae.encoder._range_checked
    with pytest.raises(ValueError, match="0..255 pixel values"):  # on the CPU: every batch
        vae(torch.rand(2, 3, 16, 16) * 255)


def test_in_range_inputs_and_bool_masks_pass():
    inputs.check_unit_range(torch.tensor([0.0, 1.0]), "x")
    inputs.check_mask(torch.tensor([[True, False]]))
    inputs.check_mask(torch.tensor([0.0, 0.5, 1.0]))          # soft masks are masks too
    x = torch.rand(2, 3, 8, 8)
    m = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    m[:, :, :4] = True
    assert torch.equal(apply_mask(x, m, 0.0)[:, :, :4], torch.zeros(2, 3, 4, 8))
