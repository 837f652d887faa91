"""Pure vision code: decode, detect, preprocess, classify, pipeline.

Arrays in, dataclasses out; no Celery, HTTP or SQL here.
"""
