"""The NLP fine-tuning lab: shared code behind the notebooks (data, models, training, metrics, plots, reports)."""
from lib.errors import LabError  # noqa: F401
from lib.params import setup  # noqa: F401
