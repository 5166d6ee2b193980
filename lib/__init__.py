"""The NLP fine-tuning lab: shared code behind the notebooks (data, models, training, metrics, plots, reports)."""
from lib.core.errors import LabError  # noqa: F401
from lib.running.params import setup  # noqa: F401
