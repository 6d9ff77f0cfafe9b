"""The operator panel: a web page for judging trials (state: model, app: FastAPI, node: ROS adapter)."""
