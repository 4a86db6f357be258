"""The door (docs/door.md): participant tokens by policy, so a ban holds before anyone is on a stage.

``decision`` decides (pure), ``issuer`` orchestrates one request (read, decide, make, record, audit),
``signing`` makes key-pair tokens with a KMS key, ``records`` keeps every token issued.
"""
