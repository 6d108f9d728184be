"""The codec: GoP planning, tiling, the latent codec and its context model, the container, the video codec."""
