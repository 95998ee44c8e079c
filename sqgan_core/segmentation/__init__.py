"""The vehicle-side segmenter: an mmsegmentation model (Fast-SCNN) trained on simulator frames."""
