"""Model cards of skins: defined in lntune.skin_card (save_skin writes one), named here with the other interop."""
from lntune.skin_card import CARD, invocation, model_card  # noqa: F401

__all__ = ["CARD", "invocation", "model_card"]
