"""Training: the loop and its log (``train``), the full training state and its checkpoint
(``checkpoints``), the learning curve the judge draws during training (``curve``), and data
parallelism (``distributed``, ``launch``)."""
