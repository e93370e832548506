"""Data: datasets, batching (``DataLoader``), splits, transforms and loaders of real data.

``rb.data.DataLoader(dataset, batch_size, shuffle=True, seed=0)`` batches in-memory arrays with
fancy indexing; ``rb.data.transforms`` holds batch-wise augmentation and noise injection;
``rb.data.datasets`` loads the digits, MNIST/Fashion-MNIST and CSV files and makes toy problems.
"""

from rosenblatt.data import datasets, transforms
from rosenblatt.data.dataset import Dataset, Subset, TensorDataset
from rosenblatt.data.datasets import FashionMNIST, load_digits
from rosenblatt.data.loader import DataLoader, default_collate
from rosenblatt.data.split import KFold, random_split, train_val_test_split

__all__ = ["DataLoader", "Dataset", "FashionMNIST", "KFold", "Subset", "TensorDataset", "datasets", "default_collate",
           "load_digits", "random_split", "train_val_test_split", "transforms"]
