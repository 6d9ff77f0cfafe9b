"""ROS 2 nodes, thin adapters over the layers below, and the graph definition that `ript up` and the launch files share."""
