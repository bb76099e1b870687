{
  "targets": [
    {
      "target_name": "shm",
      "sources": ["shm.cc"],
      "cflags_cc": ["-O2", "-Wall"]
    }
  ]
}
