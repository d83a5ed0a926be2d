{
  "targets": [
    {
      "target_name": "topiary_blas",
      "sources": ["topiary_blas.c"],
      "cflags": ["-O2", "-fPIC"],
      "libraries": ["-lopenblas"]
    }
  ]
}
