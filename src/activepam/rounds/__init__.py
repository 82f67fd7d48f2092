"""Expert rounds: export, label import, training, evaluation, answers."""
