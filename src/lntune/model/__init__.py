from lntune.model.archmap import LABELS, NormMap, NormSite, map_norms
from lntune.model.load import LoadedModel, load_model, wrap

__all__ = ["LABELS", "LoadedModel", "NormMap", "NormSite", "load_model", "map_norms", "wrap"]
