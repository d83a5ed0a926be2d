{
  "targets": [
    {
      "target_name": "topiary_blas",
      "sources": ["topiary_blas.c"],
      "cflags": ["-O3", "-fPIC", "-ffast-math", "-fopenmp", "-march=native"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-lopenblas", "-lm"]
    }
  ]
}
