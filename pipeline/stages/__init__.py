"""Stage entry points: read params, call the library, write outputs atomically, track."""
