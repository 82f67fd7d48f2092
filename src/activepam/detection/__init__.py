"""Detection stage: inventory, BirdNET V2.4 (LiteRT) detection with embeddings, acoustic indices."""
