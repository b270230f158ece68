"""Pictures of what training did (matplotlib, an optional extra: `pip install "hncse[plots]"`)."""

from hncse.plots.training_curves import (
    CURVES_NAME,
    draw_from_trainer_state,
    draw_training_curves,
    plotting_unavailable,
)

__all__ = ["CURVES_NAME", "draw_from_trainer_state", "draw_training_curves", "plotting_unavailable"]
