"""``rb.viz``: plots of training and of what a network learned (matplotlib, imported lazily)."""

from rosenblatt.viz.cnn import capture_feature_maps, plot_feature_maps, plot_filters

__all__ = ["capture_feature_maps", "plot_feature_maps", "plot_filters"]
