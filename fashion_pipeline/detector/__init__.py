"""Faster R-CNN clothing detector: DeepFashion COCO training, COCO evaluation, inference.

Plain modules (runnable without Dagster): ``model`` builds the network, ``data`` reads COCO,
``engine`` trains, ``evaluate`` scores with pycocotools, ``train`` is the CLI that ties them
together, ``inference`` serves downstream stages, ``selection`` picks the best backbone.
"""
