"""The V2X link: CurveZMQ transport, key handling, seeded channel models and the link emulator.

Plain Python (pyzmq, numpy, yaml): no rclpy here, so the link runs and is tested without ROS.
"""
