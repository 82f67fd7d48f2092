"""Listen-and-label review page over an exported annotation set (``activepam review``).

* :mod:`activepam.plots.spectrogram` - spectrogram PNGs with time/frequency axes and the
  target window (also used for the exported PNGs);
* :mod:`activepam.review.journal` - the append-only, fsynced answer journal per annotator
  (read unchanged by ``activepam labels import``);
* :mod:`activepam.review.server` - the local tornado server and its page (``static/``);
* :mod:`activepam.review.cli` - the ``activepam review`` command.

Importing this package imports nothing heavy; the server (tornado) is loaded on use.
"""
