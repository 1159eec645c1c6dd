module echbench

go 1.27
