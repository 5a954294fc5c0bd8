"""Squashed images: an image's layers flattened into one, as a ``docker load`` tarball.

``flatten`` merges layer tars (whiteouts, opaque directories, hard links) in two streaming
passes; ``archive`` writes the docker-archive around the flat layer; ``service`` builds one
per image into storage as a derived image and finds it again; ``signing`` signs it with GPG.
"""
