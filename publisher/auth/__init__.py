"""Who may read what, and who is asking.

* :mod:`.principal`: the caller (anonymous, an API key, a token) and Tiled's tag rule: a node
  is readable when its access tags and the caller's meet, ``public`` meeting everyone;
* :mod:`.tags`: a node's effective tags from pipeline.yml's rules (inherited down the tree) and
  the access class ("chain") that places its data under a public or a private prefix.

Nothing is imported here, so a handler loads only the modules it uses.
"""
