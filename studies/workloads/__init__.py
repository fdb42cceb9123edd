"""Workloads: the datasets a study trains on, where they come from, and the models.

Owns: ``sources`` (where each dataset is found or fetched, one resolution order for every
caller), ``archives`` (``robustness data import``), ``loading`` (``load_dataset``: a whole
dataset as tensors), its readers ``cifar10``, ``fashion_mnist``, ``digits``, the ``Dataset``
type (``dataset``), ``batching`` (batches and augmentation) and ``models`` (ResNet-20, CNN,
MLP). A new dataset or model is added here.

May import: the vocabulary (``studies.errors``, ``paths``) and torch, torchvision, numpy. Not
ray, mlflow, fastapi or optuna (the GPU machine has none of them), nor any other stage.
"""
