"""Looking at the table before training: its images, the validation folds, label shuffling.

    scan       each image file's header (size, mode, format) and whether it can be used at all
    eda        the eda report: class counts, sizes, modes, duplicates, broken images
    plots      the eda pictures
    split      the validation folds (runs/COMP/folds.csv)
    balance    label shuffling (runs/COMP/balance.json)
"""
