"""The torch backend: :class:`TorchPredictor` runs an :class:`EfficientSam` module.

The encoder runs as the module; prompts are decoded by :class:`FastMaskDecoder`, the module's decoder
rearranged for inference (same outputs to rounding in float32), against a per-image context built
once per embedding.
"""

from __future__ import annotations

import numpy as np
import torch

from efficientsam_studio.model import EfficientSam
from efficientsam_studio.model.fast_decoder import FastMaskDecoder, ImageContext
from efficientsam_studio.model.padding_tokens import merge_plan

from .allocator import tune_allocator
from .base import BasePredictor
from .numpy_predictor import best_candidates
from .point_encoding import HostPointEncoder
from .preprocess import preprocess_image
from .prompts import PADDING


class TorchPredictor(BasePredictor):
    """SamPredictor-style predictor on a torch model (see :class:`~.base.BasePredictor` for the API).

    Args:
        model: an :class:`EfficientSam` with its weights loaded (it is put in eval mode).
        model_name: registry name, for reports and cache keys.
        device: where the model and the embedding live.
    """

    backend = "torch"
    decoder_dtype = torch.float32
    """Precision of the decoder's image-sized products (bfloat16 in ``TorchBf16Predictor``)."""

    def __init__(self, model: EfficientSam, model_name: str, device: torch.device | str = "cpu") -> None:
        # a few prompts per decoder call: on a 2-core CPU the time per prompt is lowest at 2 in float32
        # and 4 in bfloat16 (larger chunks leave the caches); memory stays at a few MB per prompt
        chunk = 2 if self.decoder_dtype == torch.float32 else 4
        super().__init__(model_name, max_points=model.max_num_points, decode_chunk=chunk)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        tune_allocator()
        self._fast_decoder: FastMaskDecoder | None = None
        self._point_encoder: HostPointEncoder | None = None
        self._fast_versions: tuple[int, ...] = ()
        self._watched: list[torch.Tensor] | None = None
        self._context: tuple[torch.Tensor, ImageContext] | None = None
        self._warmed = False

    @property
    def fast_decoder(self) -> FastMaskDecoder:
        """The inference decoder. It holds copies of some weights, so it is rebuilt when the model's
        parameters or buffers change in place (``load_state_dict``, an optimiser step)."""
        return self._current_weights()[0]

    @property
    def point_encoder(self) -> HostPointEncoder:
        """The prompt encoder's function on the host; its weight copies are rebuilt as the decoder's."""
        return self._current_weights()[1]

    def _current_weights(self) -> tuple[FastMaskDecoder, HostPointEncoder]:
        versions = self._weight_versions()
        if self._fast_decoder is None or versions != self._fast_versions:
            encoder = self.model.prompt_encoder
            self._fast_decoder = FastMaskDecoder(
                self.model.mask_decoder, encoder.get_dense_pe(), self.decoder_dtype
            ).to(self.device)
            self._point_encoder = HostPointEncoder(encoder, self.model.img_size)
            self._fast_versions = versions
            self._context = None
        return self._fast_decoder, self._point_encoder

    def _weight_versions(self) -> tuple[int, ...]:
        if self._watched is None:  # the decoder's and the prompt encoder's weights, the positional matrix
            encoder = self.model.prompt_encoder
            self._watched = [
                *self.model.mask_decoder.parameters(),
                *encoder.parameters(),
                *encoder.buffers(),
            ]
        try:
            return tuple(t._version for t in self._watched)
        except RuntimeError:  # weights made under torch.inference_mode have no version counter (and
            return ()  # cannot be changed in place outside it)

    def image_context(self) -> ImageContext:
        """The decoder's per-image context for the current embedding (built once per embedding)."""
        embedding, decoder = self._embedding, self.fast_decoder
        if self._context is None or self._context[0] is not embedding:
            self._context = (embedding, decoder.prepare(embedding))
        return self._context[1]

    def prepare_decoding(self) -> None:
        """Do now the decoder's work that the first prompt on the current image would otherwise wait for:
        its per-image context (about 10 ms on a 2-core CPU) and, once per predictor, one decode of a
        point at the image centre, which builds the decoder and lets torch set up its kernels (some
        30 ms more on the first prompt after loading)."""
        context = self.image_context()
        if not self._warmed:
            h, w = self._require_image()
            point = np.array([[[w / 2, h / 2]]], dtype=np.float32)
            tokens, bias = self.merged_prompt_tokens(point, np.ones((1, 1), np.float32))
            self.fast_decoder.decode(context, tokens, prompt_bias=bias)
            self._warmed = True

    def reset_image(self) -> None:
        super().reset_image()
        self._context = None

    def prompt_tokens(self, coords: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts ``coords (Q, N, 2)`` in original pixels, ``labels (Q, N)`` -> tokens ``(Q, 6, D)`` and
        which of them are padding, ``(Q, 6)`` bool."""
        coords, labels = self._padded(coords, labels)
        padding = torch.from_numpy(labels == PADDING).to(self.device)
        return self._encode_points(coords, labels), padding

    def merged_prompt_tokens(
        self, coords: np.ndarray, labels: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Like :meth:`prompt_tokens`, with the padding points merged into one token (planned on the host,
        see ``padding_tokens.merge_plan``, and only the tokens kept are encoded): ``(Q, n, D)`` and their
        attention biases ``(Q, n)``, or the ``(Q, 6, D)`` tokens and None when merging saves nothing."""
        coords, labels = self._padded(coords, labels)
        plan = merge_plan(labels == PADDING)
        if plan is None:
            return self._encode_points(coords, labels), None
        kept, bias = plan
        columns = [*range(kept), labels.shape[1] - 1]
        tokens = self._encode_points(coords[:, columns], labels[:, columns])
        return tokens, torch.from_numpy(bias).to(self.device)

    def _padded(self, coords: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point lists padded to the model's 6 points with coordinate -1 and label -1, as it pads them."""
        missing = self.max_points - labels.shape[1]
        if missing <= 0:
            return coords, labels
        coords = np.pad(coords, ((0, 0), (0, missing), (0, 0)), constant_values=-1.0)
        return coords, np.pad(labels, ((0, 0), (0, missing)), constant_values=PADDING)

    def _encode_points(self, coords: np.ndarray, labels: np.ndarray) -> torch.Tensor:
        """``coords (Q, n, 2)`` pixels (-1: padding) and ``labels (Q, n)`` -> tokens ``(Q, n, D)``."""
        tokens = self.point_encoder.encode(coords, labels, self._require_image())
        return torch.from_numpy(tokens).to(self.device)

    def encode_image(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``(H, W, 3)`` -> embedding ``(1, 256, 64, 64)`` on the device (no state change)."""
        with torch.inference_mode():
            return self.model.get_image_embeddings(preprocess_image(image, self.device, self.model.img_size))

    def _encode(self, image: np.ndarray) -> torch.Tensor:
        return self.encode_image(image)

    def _decode(self, coords: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tokens, bias = self.merged_prompt_tokens(coords, labels)
        logits, iou = self.fast_decoder.decode(self.image_context(), tokens, prompt_bias=bias)
        return logits.float().cpu().numpy(), iou.float().cpu().numpy()

    def _decode_above(
        self, coords: np.ndarray, labels: np.ndarray, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Runs the transformer for every prompt, then the mask upscaling (about a third of the
        decoder's time) only for prompts with a candidate scored above ``min_score``."""
        if min_score is None:
            return self._decode(coords, labels)
        return self._decode_selected(coords, labels, min_score, best_only=False)

    def _decode_best(
        self, coords: np.ndarray, labels: np.ndarray, min_score: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scores come before the masks, so only each prompt's best candidate is upscaled."""
        return self._decode_selected(coords, labels, min_score, best_only=True)

    def _decode_selected(
        self, coords: np.ndarray, labels: np.ndarray, min_score: float | None, best_only: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decodes the three multimask candidates' scores, then upscales the wanted masks: every
        candidate, or each prompt's best (``best_only``), of the prompts whose wanted candidates have a
        score above ``min_score`` (None: all); the others' logits are ``-inf``."""
        decoder, context = self.fast_decoder, self.image_context()
        mask_ids = list(range(1, decoder.num_mask_tokens))  # the multimask outputs
        tokens, bias = self.merged_prompt_tokens(coords, labels)
        queries, keys = decoder.decode_tokens(context, tokens, prompt_bias=bias, mask_ids=mask_ids)
        hyper, iou = decoder.heads(queries, mask_ids, reduced=True)
        scores = iou.float().cpu().numpy()
        if best_only:
            best = best_candidates(scores)
            rows = np.arange(len(scores))[:, None]
            scores = scores[rows, best]
            hyper = hyper[torch.from_numpy(rows), torch.from_numpy(best).to(hyper.device)]
        h, w = context.size
        wanted = np.ones(len(scores), bool) if min_score is None else (scores > min_score).any(axis=1)
        if wanted.all():
            return decoder.upscale_masks(context, keys, hyper).float().cpu().numpy(), scores
        logits = np.full((*scores.shape, 4 * h, 4 * w), -np.inf, dtype=np.float32)
        if wanted.any():
            rows = torch.from_numpy(np.flatnonzero(wanted)).to(keys.device)
            computed = decoder.upscale_masks(context, keys[rows], hyper[rows])
            logits[wanted] = computed.float().cpu().numpy()
        return logits, scores

    def _embedding_to_numpy(self, embedding: torch.Tensor) -> np.ndarray:
        return embedding.detach().to("cpu", torch.float32).numpy().copy()

    def _embedding_from_numpy(self, embedding: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(embedding)
        if not array.flags.writeable:  # e.g. a cache entry read from disk: torch wants its own copy
            array = array.copy()
        return torch.from_numpy(array).to(self.device)
