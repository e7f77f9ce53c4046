{
  "targets": [
    {
      "target_name": "relay",
      "sources": ["relay.c", "sipio.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "libraries": ["-lpthread"]
    }
  ]
}
