"""Prediction: the engine, resizing, backends, folder and GeoTIFF jobs, areas, export."""
