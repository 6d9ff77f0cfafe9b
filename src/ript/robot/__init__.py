"""Robot drivers in plain Python: the Franka safety layer and poses, the RealSense camera."""
