{
  "targets": [
    {
      "target_name": "shm",
      "sources": ["shm.cc", "dirs.cc"],
      "cflags_cc": ["-O2", "-Wall"]
    }
  ]
}
