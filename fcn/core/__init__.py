"""What everything else builds on, with no TensorFlow: palette, metric, image files, the writer, errors."""
