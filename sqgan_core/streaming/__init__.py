"""The ROS-free streaming core, in the order a frame travels:

    stream.StreamEncoder      image + trainIds -> tokens (the codec) -> packets      (vehicle)
    packetizer.Packetizer     tokens -> info packets + interleaved index packets     (vehicle)
    wire                      the packet format both ends share (header, CRC, frame info)
    --- the link: sqgan_core.transport (CurveZMQ, channel models, shaper, emulator) ---
    assembler.FrameAssembler  packets -> AssembledFrame (lost tokens flagged)         (RSU)
    concealment               lost tokens -> predicted tokens                          (RSU)
    stream.StreamDecoder      concealed tokens -> image + trainIds at camera size      (RSU)

Nodes (ros2_ws) only translate ROS messages to and from these calls. Submodules are imported where
used: `wire`, `packetizer` and `assembler` need numpy only, `stream` loads torch and the codec.
"""
