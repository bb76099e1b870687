"""The bench's baseline Dataset: files read with open() (from the page cache, or
the disk), raw bytes, as a training script without the server reads them."""
import os

from torch.utils.data import Dataset


class LocalFiles(Dataset):
    """`files` under `root`; with `labels`, each item is (bytes, label). An index that is a
    list (a BatchSampler as the sampler) gives that batch's items."""

    def __init__(self, root, files, labels=None):
        self.root = root
        self.files = files
        self.labels = labels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, list):
            return [self[i] for i in index]
        with open(os.path.join(self.root, self.files[index]), 'rb') as f:
            data = f.read()
        return data if self.labels is None else (data, self.labels[index])
