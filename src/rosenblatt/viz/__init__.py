"""``rb.viz``: plots of training and of what a network learned (matplotlib, imported lazily)."""

from rosenblatt.viz.autoencoder import plot_latent_space, plot_reconstructions
from rosenblatt.viz.cnn import capture_feature_maps, plot_feature_maps, plot_filters
from rosenblatt.viz.curves import plot_learning_curves

__all__ = ["plot_latent_space", "plot_reconstructions", "capture_feature_maps", "plot_feature_maps", "plot_filters",
            "plot_learning_curves"]
