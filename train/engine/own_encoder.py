"""An encoder of one's own (any ``nn.Module`` mapping ``[T, B, C, H, W]`` to ``[T, B, D]``, not in the model
registry) inside the training tasks: what its checkpoints record, and the clear refusal wherever a checkpoint's
encoder would have to be rebuilt from the registry.

Such a checkpoint holds the encoder's weights (``state_dict``) but not its code: the caller brings the encoder
object again (``pretrain(encoder, ..., resume=True)``, ``finetune(encoder, pretrained=...)``), of the same class.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from neuromoco.errors import UserError

#: a checkpoint's ``model.name`` of an own encoder starts with this, then the class's import path
OWN_PREFIX = "own:"


def own_name(encoder: nn.Module) -> str:
    """``own:package.module.Class`` of ``encoder``: the model name its checkpoints and summaries carry."""
    cls = type(encoder)
    return f"{OWN_PREFIX}{cls.__module__}.{cls.__qualname__}"


def own_record(encoder: nn.Module, input_shape: list[int], feature_dim: int) -> dict[str, Any]:
    """The checkpoint's ``model`` entry of an own encoder (what a registry model's rebuilds it from, here only
    what identifies it)."""
    return {"name": own_name(encoder), "input_shape": list(input_shape), "kwargs": {}, "own": True,
            "feature_dim": int(feature_dim)}


def is_own(model: dict[str, Any]) -> bool:
    """Whether a checkpoint's ``model`` entry is an own encoder's (not rebuildable from the registry)."""
    return bool(model.get("own")) or str(model.get("name", "")).startswith(OWN_PREFIX)


def require_registry_model(ckpt: dict[str, Any], what: str) -> None:
    """Refuse (:class:`UserError`) to rebuild ``ckpt``'s model from the registry when it is an own encoder's;
    ``what``: how the caller passes the encoder instead."""
    model = ckpt.get("model", {})
    if is_own(model):
        raise UserError(f"{ckpt.get('_path', 'the checkpoint')} holds an encoder of one's own "
                        f"({str(model.get('name'))[len(OWN_PREFIX):]}), not a registry model: its code is not in the "
                        f"checkpoint; {what}")
