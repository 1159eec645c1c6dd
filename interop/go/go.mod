module echinterop

go 1.27
