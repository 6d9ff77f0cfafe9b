"""The operator panel: a web page for judging trials (state: model, app: FastAPI). The ROS adapter is ript.ros.panel_node."""
