"""Real-robot adapters: RealSense camera driver and node, the Franka command bridge and its safety
layer. The cores (realsense, safety, poses) are plain Python; the *_node / *_bridge modules are the
thin ROS nodes over them."""
