"""``rb.viz``: plots of training and of what a network learned (matplotlib, imported lazily)."""

from rosenblatt.viz.attention import plot_attention
from rosenblatt.viz.autoencoder import plot_latent_space, plot_reconstructions
from rosenblatt.viz.cnn import capture_feature_maps, plot_feature_maps, plot_filters
from rosenblatt.viz.curves import plot_learning_curves
from rosenblatt.viz.decision import decision_regions, plot_decision_boundary
from rosenblatt.viz.gradients import layer_gradient_norms, plot_gradient_flow

__all__ = ["plot_latent_space", "plot_reconstructions", "capture_feature_maps", "plot_feature_maps", "plot_filters",
            "plot_learning_curves"]
__all__ += ["decision_regions", "layer_gradient_norms", "plot_decision_boundary", "plot_gradient_flow"]
__all__ += ["plot_attention"]
