"""The NIR graphs that ship with NeuroMoCo, each with its model card (``X.nir`` + ``X.card.json``; README.md).

Installed as the package data of ``neuromoco.examples``, so a pip install has them too: ``deploy examples``
lists them and ``deploy examples --copy DIR`` copies them out. In a source checkout this is the folder
``nir_models/``; ``python nir_models/make_fixtures.py`` rebuilds the hand-built ones.
"""
