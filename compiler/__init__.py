"""Rule packs: selection for a window and scope, JSON Schema, validation, manifest, pack reader."""
