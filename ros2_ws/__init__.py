"""ros2_ws: the ROS 2 layer. Thin rclpy nodes that translate messages to sqgan_core / sim calls."""
