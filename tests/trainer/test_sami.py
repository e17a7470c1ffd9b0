"""SAMI: masking, decoder order, loss, learning, and the export loading into the studio's model."""

from __future__ import annotations

import torch

from efficientsam_studio.model import build_model
from trainer.loop import TrainConfig, fit
from trainer.runlog import read_log
from trainer.sami import (
    DecoderConfig,
    SamiModel,
    build_student_encoder,
    random_masking,
    student_shape,
)
from trainer.sami_task import SamiConfig, SamiTask

TINY_DECODER = DecoderConfig(depth=2, width=64, heads=4)


def test_random_masking_is_per_sample_and_restorable():
    torch.manual_seed(0)
    noise = torch.rand(3, 196)
    keep, masked, restore = random_masking(noise, 0.75)
    assert keep.shape == (3, 49) and masked.shape == (3, 147)
    for b in range(3):
        assert sorted(torch.cat([keep[b], masked[b]]).tolist()) == list(range(196))
        assert set(keep[b].tolist()) == set(noise[b].argsort()[:49].tolist())
    assert not torch.equal(keep[0].sort().values, keep[1].sort().values)
    shuffled = torch.cat([keep, masked], dim=1)
    assert torch.equal(torch.gather(shuffled, 1, restore), torch.arange(196).expand(3, -1))


def test_student_shapes():
    assert student_shape("vit_t") == (192, 12, 3)
    assert student_shape("vit_s") == (384, 12, 6)
    assert student_shape("vit_b") == (768, 12, 12)
    assert student_shape("tiny") == (64, 2, 1)


def test_loss_is_mse_over_all_tokens_and_visible_outputs_stay_in_place():
    torch.manual_seed(0)
    model = SamiModel(build_student_encoder("tiny"), 8, TINY_DECODER, mask_ratio=0.5)
    images, noise, target = torch.randn(2, 3, 64, 64), torch.rand(2, 16), torch.randn(2, 16, 8)
    out = model(images, noise, target)
    keep, masked, restore = random_masking(noise, 0.5)
    visible, grid = model.encode_visible(images, keep)
    pred = model.decoder(visible, keep, masked, restore, grid)
    assert torch.allclose(out["loss"], (pred - target).pow(2).mean())
    # a visible token's prediction is a function of its own encoder output only (embed -> norm -> head)
    visible2 = visible.clone()
    visible2[0, 0] += 1.0
    pred2 = model.decoder(visible2, keep, masked, restore, grid)
    changed = (pred2 - pred).abs().amax(dim=-1)[0] > 0
    assert changed[keep[0, 0]]
    assert not changed[keep[0, 1:]].any()


def test_neck_is_frozen_and_untouched_by_training(teacher_ckpt, image_dir, tmp_path):
    task = SamiTask(
        SamiConfig(encoder="tiny", teacher=teacher_ckpt, data=image_dir, input_size=64, decoder=TINY_DECODER)
    )
    model = task.build_model()
    assert all(not p.requires_grad for p in model.encoder.neck.parameters())
    assert all(p.requires_grad for p in model.encoder.blocks.parameters())


def test_loss_halves_and_export_loads_into_the_model_strictly(teacher_ckpt, image_dir, tmp_path):
    task = SamiTask(
        SamiConfig(encoder="tiny", teacher=teacher_ckpt, data=image_dir, input_size=64, decoder=TINY_DECODER)
    )
    config = TrainConfig(
        out_dir=tmp_path / "run", epochs=12, batch_size=8, lr=3e-3, warmup_epochs=1, progress=False
    )
    result = fit(task, config)
    losses = [r["loss"] for r in read_log(tmp_path / "run" / "log.jsonl")]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 <= 0.5 * losses[0], losses

    exported = torch.load(result.export_path, weights_only=True)
    assert exported["meta"]["encoder"] == "tiny"
    state = exported["model"]
    assert all(k.startswith("image_encoder.") for k in state)
    studio = build_model("tiny")
    studio.image_encoder.load_state_dict(
        {k[len("image_encoder.") :]: v for k, v in state.items()}, strict=True
    )
    # the studio's encoder computes exactly the student's tokens
    student = build_student_encoder("tiny")
    sami = SamiModel(student, task.teacher_dim, TINY_DECODER, mask_ratio=0.0)
    sami.encoder.load_state_dict(studio.image_encoder.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens, _ = sami.encode_visible(images, torch.arange(16).expand(2, -1))
        reference = studio.image_encoder.forward_tokens(images).reshape(2, 16, -1)
        assert torch.allclose(tokens, reference, atol=1e-5)
        assert studio.image_encoder(torch.randn(1, 3, 1024, 1024)).shape == (1, 256, 64, 64)
