"""ClassPulse as an LTI 1.3 tool (LTI Advantage): launches, deep linking, roster sync."""
