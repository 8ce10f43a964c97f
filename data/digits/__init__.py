"""Package data: the binarised UCI 8×8 digits (``digits.npz``; licence and source beside it).

Installed as ``potts_gwg.digits`` so that ``potts_gwg.ebm.data.load_digits()`` finds the file
in a wheel as well as in a checkout.
"""
