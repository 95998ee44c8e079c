"""RSU-side safety logic on reconstructed frames (no ROS, no simulator): hazard detection."""
from sqgan_core.safety.hazards import (HAZARD_TYPES, Corridor, HazardConfig, HazardDetector, HazardWarning,
                                       parse_verdict, verdict)

__all__ = ["HAZARD_TYPES", "Corridor", "HazardConfig", "HazardDetector", "HazardWarning", "parse_verdict", "verdict"]
