"""Procedural drawing of clothed figures, shared by the DeepFashion sample and the embedded Pinterest site.

Both use the same body and garment code, so a detector trained on the DeepFashion sample
recognises the garments on the runway looks of the embedded Pinterest site.
"""
