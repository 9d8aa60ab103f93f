"""Account: what a user keeps with us, and how they leave.

Owns kompromat and its sealing (`kompromat`, `sealing`), the master keys' lifecycle (`keys`), the
X connection (`x_oauth`), leaving and export (`leaving`), and erasure with its data map
(`erasure`). May use money (a leaving account's refund); never commitments."""
