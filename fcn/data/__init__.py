"""Training data: tile/mask pairs, the tf.data pipeline, class balance, synthetic and DeepGlobe tiles."""
