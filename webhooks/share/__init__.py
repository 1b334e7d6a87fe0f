"""The public share pages of a CPN result: the HTML page and its PNG card."""
