"""Data: Fashion-MNIST and image folders, the Inception preprocessing, the paper's crops, image files."""
