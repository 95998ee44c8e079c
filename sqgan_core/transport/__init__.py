"""The V2X link, as transport: CurveZMQ sockets (`zmq_link`), vehicle/RSU keys (`keys`), seeded channel
models and link profiles (`channel`), the per-packet loss/delay/bandwidth shaper (`shaper`) and the
emulator process that applies a profile between vehicles and the RSU (`emulator`).

Plain Python (pyzmq, numpy, yaml), no ROS: the link runs and is tested without it, and it moves the
bytes of `sqgan_core.streaming.wire` without reading more than their header.
"""
